# The image from binaries already built on the host, without a compile: docker/Dockerfile's
# `runtime` stage (built first, and named by RUNTIME_IMAGE) plus tandemd and tandem from
# BINARIES, a directory inside the build context (the repository root):
#   docker build --target runtime -t tandem:runtime -f docker/Dockerfile .
#   cargo build --release --locked -p tandemd -p tandem
#   docker build --build-arg RUNTIME_IMAGE=tandem:runtime -t tandem:dev -f docker/prebuilt.Dockerfile .
# ci/compose-smoke.sh does this with the debug binaries (BINARIES=target/debug).
ARG RUNTIME_IMAGE=tandem:runtime
FROM ${RUNTIME_IMAGE}
ARG BINARIES=target/release
COPY ${BINARIES}/tandemd ${BINARIES}/tandem /usr/local/bin/
