# One image for the API and the Ray head and workers (they run the same code: the harness on workers).
FROM python:3.11-slim

# MuJoCo renders offscreen through EGL (Mesa); PostgreSQL's client library for psycopg comes in its wheel.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libegl1 libgl1 libglib2.0-0 curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/bench
# torch first, from PyTorch's CPU index: the project pins torch==2.13.0 exactly, and PyPI's default
# build of it is the multi-GB CUDA one. The GPU worker's image (docker-compose.yml, ray-gpu-worker) is built
# with TORCH_INDEX=https://pypi.org/simple for exactly that CUDA build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir torch==2.13.0 --index-url "$TORCH_INDEX"
COPY pyproject.toml README.md alembic.ini ./
COPY bench ./bench
COPY migrations ./migrations
RUN pip install --no-cache-dir -e ".[ray]"

ENV MUJOCO_GL=egl \
    BENCH_HOME=/var/lib/bench
VOLUME /var/lib/bench
EXPOSE 8000
CMD ["bench", "serve", "api", "--host", "0.0.0.0", "--port", "8000"]
