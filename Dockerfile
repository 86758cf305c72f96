# One image for every role of the container deployment (docker-compose.yml): the database nodes
# (`pgarbiter init` + `pgarbiter agent`), the arbiter, HAProxy and the one-shot config writer.
# BASE_IMAGE: a Debian 12 image. With a registry: debian:12. Without one (this project's
# machines): the image that `bash scripts/containers.sh` bootstraps from Debian's packages.
# Node.js 20 is not in Debian 12: the build host's own node binary comes in the build context
# (.container/node, copied there by scripts/containers.sh); nothing is downloaded but Debian's
# packages. dist/ and node_modules/ are the host's build (npm ci && npm run build).
ARG BASE_IMAGE=debian:12
FROM ${BASE_IMAGE}
# No cluster of Debian's own: pgarbiter creates the data directory itself (pgarbiter init). The
# state directory belongs to postgres, so a new named volume mounted there does too: the members run
# as postgres (see deploy/container/entrypoint.sh and docker-compose.yml). iputils-arping and
# python3-minimal: the floating VIP's gratuitous ARP and tickle ACK (src/vip/vip.ts).
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      postgresql-15 iptables nftables iproute2 haproxy procps openssl \
      iputils-arping python3-minimal \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/pgarbiter && chown postgres:postgres /var/lib/pgarbiter
COPY .container/node /usr/local/bin/node
COPY package.json /opt/pgarbiter/package.json
COPY node_modules /opt/pgarbiter/node_modules
COPY dist/src /opt/pgarbiter/dist/src
COPY deploy/container/entrypoint.sh /usr/local/bin/pgarbiter-entrypoint
RUN printf '#!/bin/sh\nexec node /opt/pgarbiter/dist/src/cli/main.js "$@"\n' > /usr/local/bin/pgarbiter \
 && chmod 755 /usr/local/bin/pgarbiter /usr/local/bin/pgarbiter-entrypoint \
 && pgarbiter --version
ENTRYPOINT ["/usr/local/bin/pgarbiter-entrypoint"]
