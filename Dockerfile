# A Ryx node image that holds the static ryx-node binary and nothing else.
# Build it with: scripts/build-static.sh --image ryx-node:latest
# (the script builds the binary on the host, then runs `docker build` with a
# context holding only this file and the binary; no registry is contacted).
FROM scratch
COPY ryx-node /ryx-node
# Give the container's own address with RYX_BIND (or --bind): the node
# advertises the address it binds, so 0.0.0.0 would not work for peers, and
# the default (127.0.0.1) is unreachable from other containers.
EXPOSE 9001/udp 9001/tcp
USER 65534:65534
ENTRYPOINT ["/ryx-node"]
