# Inkloom: multi-stage build. The runtime image runs `npm start` as a non-root
# user, keeps the SQLite database, exports and illustrations in the /app/data volume, and
# applies committed migrations at start (src/store/migrate.ts). Set
# DATABASE_URL=postgresql://... to keep the stories in PostgreSQL instead.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles its native addon when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
# postinstall runs `prisma generate` (JavaScript engine: nothing is downloaded).
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY commands ./commands
COPY adapters ./adapters
RUN npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    DATABASE_URL=file:/app/data/inkloom.db \
    EXPORT_DIR=/app/data/exports \
    IMAGE_DIR=/app/data/images
COPY --from=build --chown=node:node /app /app
RUN mkdir -p /app/data && chown node:node /app/data
USER node
VOLUME ["/app/data"]
# Terminal play needs a TTY: docker run -it --env-file .env -v inkloom:/app/data inkloom
CMD ["npm", "start", "--silent"]
