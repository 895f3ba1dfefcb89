"""Decide everything a ci-load run does, without running anything.

``make_plan`` is a pure function of the settings, the rendered compose
config(s), the Dockerfile text and the work directory. Its result names every
cache image, holds the text of every generated compose file and the exact
argv of every docker and compose command, in order. The steps only carry it
out, and ``ci-load.plan --json`` prints it.
"""

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from . import templates
from .compose_config import ServiceBuild, read_service, service_image, services
from .errors import ConfigError
from .names import CacheImages, CacheLocation, cache_images
from .settings import Settings
from .shell import shell_line
from .stages import Dockerfile, Stage, parse_dockerfile

PUSH_PULL_FILE = "push_pull.yml"
RECIPES_FILE = "recipes.yml"
STAGES_FILE = "stages.yml"

Argv = Tuple[str, ...]

# NOTE: every build uses the classic builder for now, for stage builds and the
# compose build of the recipes alike: an image built by one builder is no
# cache for the other, and only the classic builder reuses layers of pulled
# images without inline cache metadata. Builder choice is issue 4.
BUILD_ENV = {"DOCKER_BUILDKIT": "0"}


@dataclass(frozen=True)
class Build:
    """One ``docker build`` of a stage, or of the service itself (the last)."""

    name: str  # the stage, or the main service for the final build
    compose_service: str  # its service in the generated stages file
    images: Tuple[str, ...]  # tags the build gives
    argv: Argv


@dataclass(frozen=True)
class Tag:
    source: str
    target: str
    argv: Argv


@dataclass(frozen=True)
class Plan:
    service: str
    compose_files: Tuple[str, ...]
    project_dir: str
    dockerfile: str
    context: str
    target: Optional[str]
    stages_found: Tuple[str, ...]
    stages: Tuple[str, ...]  # named stages to build, in build order
    recipes: Tuple[str, ...]
    cache_repo: Optional[str]
    cache_images: CacheImages
    other_cache_images: Tuple[CacheImages, ...]
    cache_from: Tuple[str, ...]
    workdir: str
    files: Dict[str, str]  # generated file name -> text
    pull: Argv
    recipe_builds: Tuple[Build, ...]  # each recipe image, from the recipe compose file
    builds: Tuple[Build, ...]
    tags: Tuple[Tag, ...]
    push: Argv
    pushed: Tuple[str, ...]  # the cache images ``push`` stores
    list_images: Argv  # lists local images, to see which cache images exist
    build_env: Dict[str, str] = field(default_factory=lambda: dict(BUILD_ENV))
    warnings: Tuple[str, ...] = field(default=())

    def path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    def as_json(self) -> dict:
        data = asdict(self)
        data["cache_images"] = self.cache_images.as_dict()
        data["other_cache_images"] = [c.as_dict() for c in self.other_cache_images]
        data["commands"] = self.commands()
        return data

    def commands(self) -> List[str]:
        """Every command of a whole run (pull, recipes, build, push), in order,
        as shell lines."""
        found = [shell_line(self.pull)] if self.cache_repo else []
        found += [shell_line(b.argv, self.build_env) for b in self.recipe_builds]
        found += [shell_line(b.argv, self.build_env) for b in self.builds]
        found += [shell_line(t.argv) for t in self.tags]
        if self.cache_repo:
            found.append(shell_line(self.push))
        return found


def make_plan(
    settings: Settings,
    config: Mapping,
    dockerfile_text: str,
    workdir: str,
    recipe_config: Optional[Mapping] = None,
) -> Plan:
    """Plan a run for ``settings`` from the rendered compose ``config``.

    ``dockerfile_text`` is the main service's Dockerfile; ``recipe_config`` is
    the rendered recipe compose file, when one is configured.
    """
    if not settings.service:
        raise ConfigError("no main service: pass --service NAME or set ci_load.service")
    service = settings.service
    build = read_service(config, service, settings.compose_files)
    dockerfile = parse_dockerfile(dockerfile_text, build.dockerfile, build.args)
    main_target = _target_stage(dockerfile, build.target, service)
    other_targets = _other_service_targets(config, settings, build, dockerfile, main_target)

    # NOTE: the classic builder builds every stage before its target, used or
    # not, so each of those needs a cache image or it runs on every build.
    # BuildKit (issue 4) builds only what a target needs: dockerfile.needed_for.
    last = max(t.index for t in [main_target, *(t for _, t, _ in other_targets)])
    needed = dockerfile.stages[: last + 1]
    stage_names = tuple(s.name for s in needed if s.name)
    _check_recipe_settings(settings)
    recipes = _recipes(needed, settings.recipe_repo)
    _check_recipes(recipes, settings, recipe_config)

    location = _main_location(settings, config)
    cache = cache_images(location, service, settings.cache_version, stage_names, recipes)
    others = tuple(
        cache_images(CacheLocation.parse(repo), service, settings.cache_version,
                     stage_names, recipes)
        for repo in settings.other_repos
    )
    cache_from = _cache_from(build, [image for _, _, image in other_targets], settings,
                             cache, others)

    docker = settings.docker
    builds = _builds(docker, config, settings, build, main_target, stage_names, cache,
                     cache_from)
    tags = tuple(
        _tag(docker, cache.final if stage is main_target else cache.stages[stage.name], image)
        for _, stage, image in other_targets
    )
    recipe_builds = tuple(
        _recipe_build(docker, settings, recipe_config, recipe, cache, others)
        for recipe in recipes
    )

    push_pull_services = _push_pull_services(cache, others)
    generated = {
        PUSH_PULL_FILE: _render_push_pull(service, push_pull_services, workdir),
        STAGES_FILE: _render_stages(settings, build, builds, cache_from, other_targets,
                                    config),
    }
    if recipes:
        generated[RECIPES_FILE] = _render_recipes(settings, recipes, cache, others)
    for name, text in generated.items():
        _check_generated(name, text)

    own_services = [name for name, image in push_pull_services if image in cache.all()]
    push_pull = (*settings.compose, "-f", os.path.join(workdir, PUSH_PULL_FILE),
                 "--project-directory", workdir)
    return Plan(
        service=service,
        compose_files=settings.compose_files,
        project_dir=settings.project_dir,
        dockerfile=dockerfile.path,
        context=build.context,
        target=build.target,
        stages_found=tuple(s.key for s in dockerfile.stages),
        stages=stage_names,
        recipes=recipes,
        cache_repo=str(location) if settings.cache_repo else None,
        cache_images=cache,
        other_cache_images=others,
        cache_from=cache_from,
        workdir=workdir,
        files=generated,
        pull=(*push_pull, "pull", "--ignore-pull-failures"),
        recipe_builds=recipe_builds,
        builds=builds,
        tags=tags,
        push=(*push_pull, "push", *own_services),
        pushed=tuple(cache.all()),
        list_images=(*docker, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"),
        warnings=tuple(_warnings(build, dockerfile, needed, main_target)),
    )


def _builds(docker, config, settings, build: ServiceBuild, main_target: Stage,
            stage_names, cache: CacheImages, cache_from) -> Tuple[Build, ...]:
    """A build per stage in order, then the service's own build."""
    builds = []
    for stage in stage_names:
        if stage == main_target.name:
            continue  # the service's own build makes it; see final_images below
        compose_service = f"{build.service}_stage_{stage}"
        if compose_service in settings.other_services:
            raise ConfigError(
                f"other service {compose_service!r} has the name ci-load gives the "
                f"build of stage {stage!r} in its generated stages file; rename "
                "that service"
            )
        images = (cache.stages[stage],)
        builds.append(Build(stage, compose_service, images,
                            _build_argv(docker, build, stage, cache_from, images)))
    main_stage_image = cache.stages.get(main_target.name) if main_target.name else None
    # Without image:, compose names a service's image PROJECT-SERVICE (v2);
    # tagging that name lets `docker compose up` use the image just built.
    service_image_name = build.image or _compose_image_name(config, build.service)
    final_images = tuple(
        dict.fromkeys(i for i in (service_image_name, cache.final, main_stage_image) if i)
    )
    builds.append(Build(build.service, build.service, final_images,
                        _build_argv(docker, build, build.target, cache_from, final_images)))
    return tuple(builds)


def _compose_image_name(config, service: str) -> Optional[str]:
    project = config.get("name")
    return f"{project}-{service}".lower() if project else None


def _warnings(build: ServiceBuild, dockerfile: Dockerfile, needed, main_target) -> list:
    found = []
    if build.ignored_keys:
        found.append(
            f"service {build.service!r}: build key(s) {', '.join(build.ignored_keys)} "
            "are not passed on to docker build by ci-load"
        )
    for stage in needed:
        if stage.name is None and stage is not main_target:
            found.append(
                f"{dockerfile.path}:{stage.line}: stage {stage.key} has no name, so it "
                "cannot be cached as its own image; name it with FROM … AS NAME"
            )
    return found


def _target_stage(dockerfile: Dockerfile, target: Optional[str], service: str) -> Stage:
    """The stage a service builds: its ``target`` (by name, as docker takes
    it), or else the last stage."""
    if not target:
        return dockerfile.last
    stage = next((s for s in dockerfile.stages if s.name == target.lower()), None)
    if stage is None:
        named = ", ".join(s.name for s in dockerfile.stages if s.name) or "none"
        raise ConfigError(
            f"service {service!r}: target {target!r} is not a stage of "
            f"{dockerfile.path} (named stages: {named})"
        )
    return stage


def _other_service_targets(config, settings, build: ServiceBuild, dockerfile: Dockerfile,
                           main_target: Stage):
    """(service, the stage it builds, its image) for each other service.

    An other service is tagged from an image ci-load builds, so it must build
    the same Dockerfile, context and args as the main service.
    """
    found = []
    for name in dict.fromkeys(settings.other_services):
        if name == settings.service:
            continue  # the main service is built and tagged anyway
        image = service_image(config, name, settings.compose_files)
        if (services(config).get(name) or {}).get("build") is None:
            raise ConfigError(
                f"other service {name!r} has no build section, so it is not built "
                "from the main service's Dockerfile; ci-load would overwrite its "
                f"image {image}. Leave it out of --other-service"
            )
        other = read_service(config, name, settings.compose_files)
        mine = (build.dockerfile, build.context, build.args, build.network)
        theirs = (other.dockerfile, other.context, other.args, other.network)
        if theirs != mine:
            raise ConfigError(
                f"other service {name!r} does not build like the main service "
                f"{build.service!r} (Dockerfile, context, build args or network "
                "differ), so no image ci-load builds is its image; leave it out of "
                "--other-service or make its build the same but for target"
            )
        stage = _target_stage(dockerfile, other.target, name)
        if stage is not main_target and stage.name is None:
            raise ConfigError(
                f"other service {name!r} builds the last stage of {dockerfile.path}, "
                f"which has no name and is not what {build.service!r} builds; name "
                "that stage (FROM … AS NAME) so ci-load can build and cache it"
            )
        found.append((name, stage, image))
    return found


def _recipes(stages: Sequence[Stage], recipe_repo: Optional[str]) -> Tuple[str, ...]:
    """Tags of recipe images (``RECIPE_REPO:TAG``) that the stages build on."""
    if not recipe_repo:
        return ()
    found = []
    prefix = recipe_repo + ":"
    for stage in stages:
        if stage.base.startswith(prefix):
            found.append(stage.base[len(prefix):].split("@", 1)[0])
    return tuple(dict.fromkeys(found))


def _check_recipe_settings(settings: Settings) -> None:
    if settings.recipe_compose and not settings.recipe_repo:
        raise ConfigError(
            "--recipe-compose is set but --recipe-repo is not: name the repository "
            "of the recipe images (their FROM lines read RECIPE_REPO:NAME)"
        )
    if settings.recipe_repo:
        location = CacheLocation.parse(settings.recipe_repo, "recipe repo")
        if location.prefix:
            raise ConfigError(
                f"recipe repo {settings.recipe_repo!r} has a tag; give the repository "
                f"only ({location.repo}): recipe images are REPO:NAME"
            )


def _check_recipes(recipes, settings: Settings, recipe_config) -> None:
    if not recipes:
        return
    if not settings.recipe_compose:
        raise ConfigError(
            f"the Dockerfile builds on recipe image(s) {', '.join(recipes)} of "
            f"{settings.recipe_repo}: set --recipe-compose to the compose file that "
            "builds them"
        )
    missing = [r for r in recipes if r not in services(recipe_config or {})]
    if missing:
        raise ConfigError(
            f"recipe compose file {settings.recipe_compose} has no service for recipe(s) "
            f"{', '.join(missing)}; add a service named after each recipe tag"
        )


def _recipe_cache_from(settings, recipe, cache, others) -> List[str]:
    """What a recipe image may take layers from: its cache images, then itself."""
    found = [images.recipes[recipe] for images in (cache, *others)]
    found.append(f"{settings.recipe_repo}:{recipe}")
    return found


def _recipe_build(docker, settings, recipe_config, recipe, cache, others) -> Build:
    """Build a recipe image as its recipe compose service says, plus our cache_from.

    NOTE: ``docker build``, not ``compose build``: compose's classic builder
    ignores cache_from (seen with compose 2.40), so the rebuilt recipe would
    get a new image id and every stage built on it would miss the cache.
    """
    build = read_service(recipe_config, recipe, [settings.recipe_compose])
    cache_from = tuple(dict.fromkeys([*build.cache_from,
                                      *_recipe_cache_from(settings, recipe, cache, others)]))
    images = (f"{settings.recipe_repo}:{recipe}", cache.recipes[recipe])
    return Build(recipe, recipe, images,
                 _build_argv(docker, build, build.target, cache_from, images))


def _main_location(settings: Settings, config) -> CacheLocation:
    if settings.cache_repo:
        location = CacheLocation.parse(settings.cache_repo)
        if location.prefix and settings.cache_version:
            raise ConfigError(
                f"cache repo {settings.cache_repo!r} has a tag prefix, which replaces "
                f"the cache version {settings.cache_version!r}; put the version into "
                "the prefix or drop one of them"
            )
        return location
    # Without a cache repo nothing is pulled or pushed, but stage images still
    # need names; keep them apart per compose project.
    project = str(config.get("name") or os.path.basename(settings.project_dir))
    project = re.sub(r"[^a-z0-9]+", "-", project.lower()).strip("-") or "project"
    return CacheLocation(f"ci-load-local/{project}")


def _cache_from(build: ServiceBuild, other_images, settings, cache, others) -> Tuple[str, ...]:
    """Every image a build may take layers from, the service's own list first.

    The same full list goes to every build: the legacy builder only reuses
    layers of images named in --cache-from, so a stage built a moment ago
    must be on the list of the stages after it.
    """
    candidates = list(build.cache_from)
    candidates += [i for i in (build.image, *other_images) if i]
    for images in (cache, *others):
        candidates.append(images.final)
        candidates += images.stages.values()
        for recipe, image in images.recipes.items():
            candidates += [image, f"{settings.recipe_repo}:{recipe}"]
    return tuple(dict.fromkeys(candidates))


def _build_argv(docker, build: ServiceBuild, target, cache_from, images) -> Argv:
    argv = [*docker, "build", "-f", build.dockerfile]
    if target:
        argv += ["--target", target]
    for key, value in build.args.items():
        argv += ["--build-arg", key if value is None else f"{key}={value}"]
    for image in cache_from:
        argv += ["--cache-from", image]
    if build.network:
        argv += ["--network", build.network]
    for image in images:
        argv += ["-t", image]
    argv.append(build.context)
    return tuple(argv)


def _tag(docker, source, target) -> Tag:
    return Tag(source, target, (*docker, "tag", source, target))


def _push_pull_services(cache: CacheImages, others) -> List[Tuple[str, str]]:
    """(compose service name, image): the main location's, then each other's."""
    found = []
    for prefix, images in [("cache", cache), *((f"other{i}", o) for i, o in enumerate(others, 1))]:
        found.append((f"{prefix}_final", images.final))
        found += [(f"{prefix}_stage_{s}", i) for s, i in images.stages.items()]
        found += [(f"{prefix}_recipe_{r}", i) for r, i in images.recipes.items()]
    return found


def _render_push_pull(service, push_pull_services, workdir) -> str:
    body = "".join(
        templates.render("push_pull_service.yml", name=name, image=templates.scalar(image),
                         context=templates.scalar(_escape(workdir)))
        for name, image in push_pull_services
    )
    return templates.render("push_pull.yml", service=service, services=body.rstrip("\n"))


def _render_recipes(settings, recipes, cache, others) -> str:
    body = ""
    for recipe in recipes:
        cache_from = _recipe_cache_from(settings, recipe, cache, others)
        body += templates.render("recipe_service.yml", name=recipe,
                                 cache_from=templates.scalar(cache_from))
    return templates.render("recipes.yml", recipe_compose=settings.recipe_compose,
                            services=body.rstrip("\n"))


def _render_stages(settings, build: ServiceBuild, builds, cache_from, other_targets, config) -> str:
    entries = []
    for item in builds:
        section = dict(build.section)  # compose's own text: escapes intact
        section["target"] = item.name if item.compose_service != build.service else build.target
        if section["target"] is None:
            del section["target"]
        section["cache_from"] = list(cache_from)
        entries.append((item.compose_service, item.images[0], section))
    for name, _, image in other_targets:
        section = (services(config).get(name) or {}).get("build")
        if section is not None:
            section = dict(section) if isinstance(section, dict) else {"context": section}
            section["cache_from"] = list(cache_from)
            entries.append((name, image, section))
    body = "".join(
        templates.render("stage_service.yml", name=name, image=templates.scalar(image),
                         build=templates.block(section, 6))
        + "\n"
        for name, image, section in entries
    )
    return templates.render(
        "stages.yml", service=build.service, compose_files=", ".join(settings.compose_files),
        dockerfile=build.dockerfile, services=body.rstrip("\n"),
    )


def _escape(value: str) -> str:
    return value.replace("$", "$$")


def _check_generated(name: str, text: str) -> None:
    # Parse what we render: a template mistake must fail here, not in compose.
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuntimeError(f"bug: generated {name} is not valid YAML: {error}") from None
    if not (isinstance(data, dict) and data.get("services")):
        raise RuntimeError(f"bug: generated {name} has no services")
