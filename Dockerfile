# sluice, one image for every role: `sluice up`, `sluice ingest`, `sluice worker`, `sluice query`.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY ui ./ui
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
RUN ln -s /app/dist/cli/sluice.cjs /usr/local/bin/sluice && chmod +x /app/dist/cli/sluice.cjs && mkdir -p /var/lib/sluice
# The API on every interface; /metrics (it names tenants) and health on their own port, on
# loopback unless the deployment sets a private address (docker-compose.yml does).
ENV SLUICE_DATA_DIR=/var/lib/sluice SLUICE_HOST=0.0.0.0 SLUICE_OBS_METRICS_ADDRESS=127.0.0.1:9464
ENTRYPOINT ["node", "/app/dist/cli/sluice.cjs"]
CMD ["up"]
