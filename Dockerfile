# syntax=docker/dockerfile:1
# sluice container image (docs/deploy.md). Build: docker build -t sluice .
# Run:  docker run -p 8080:8080 -v $PWD/policy.yaml:/etc/sluice/policy.yaml:ro sluice

# Build stage: compile TypeScript, then a production-only node_modules.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY policies ./policies
COPY deploy/image-build.sh ./deploy/image-build.sh
RUN sh deploy/image-build.sh /src /out

# Runtime stage: no compiler, no dev dependencies, not root.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /out /app
COPY deploy/container-policy.yaml /etc/sluice/policy.yaml
# The image's own user (uid 1000), not root; ports above 1024 need no capability.
USER node
EXPOSE 8080 9901
# Readiness on the admin port: 503 while draining, so an orchestrator stops routing here.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.SLUICE_ADMIN_PORT||9901)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself (no shell in between);
# sluice handles SIGTERM (drain) and SIGHUP (reload). Add `docker run --init` to reap zombies.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["serve", "--config", "/etc/sluice/policy.yaml"]
