# The image the Docker sandbox backend runs programs in (sandbox.backend: docker).
#   docker build -f infra/docker/sandbox.Dockerfile -t fimum/sandbox:latest infra/docker
# Every run is `docker run --rm --network none --read-only --user 65534:65534 --cap-drop ALL ...`
# with a tmpfs work dir (see src/fimum_ai/chat/sandbox/docker.py); this image only carries runtimes.
# Keep `sandbox.docker_languages` to what is installed here.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 nodejs bash gcc g++ libc6-dev default-jdk-headless perl coreutils \
 && rm -rf /var/lib/apt/lists/*
USER 65534:65534
WORKDIR /sandbox
