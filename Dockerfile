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
RUN ln -s /app/dist/cli/main.js /usr/local/bin/sluice && chmod +x /app/dist/cli/main.js && mkdir -p /var/lib/sluice
ENV SLUICE_DATA_DIR=/var/lib/sluice SLUICE_HOST=0.0.0.0
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["up"]
