FROM busybox:1.36 AS first
# A continued RUN whose next line reads like a FROM.
RUN echo one \
  from busybox:1.36 as not-a-stage
# A heredoc whose body reads like a FROM.
RUN <<EOT
from busybox:1.36 as not-a-stage-either
FROM busybox:1.36 AS nor-this
EOT
from first as Second
