#!/bin/sh
# The container image's build steps (Dockerfile, build stage), runnable without a
# Docker daemon: test/integration/deploy.test.ts runs this same script.
#   deploy/image-build.sh SRC OUT
# SRC: a copy of the repository; OUT: the application folder of the runtime
# stage (dist/, policies/, production node_modules/), later /app in the image.
set -eu
src=$1
out=$2
cd "$src"
# --ignore-scripts: no prepare here; the build is the explicit step below.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
npx tsc -p tsconfig.json
mkdir -p "$out"
cp -R dist policies package.json package-lock.json "$out"/
find "$out/dist" -name '*.map' -delete
cd "$out"
npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
echo "image-build: $(du -sh "$out" | cut -f1) in $out"
