# Two images from one file, each with only what its processes use:
#   docker build --target serve -t emobot:serve .   # bot, worker, `emobot predict`: no TensorFlow
#   docker build --target train -t emobot:train .   # trainer, migrate (converts old models)
# Every process runs as `python -m cli bot|worker|trainer|run --prepare-only|…`.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/app/var \
    # glibc gives each thread that allocates an arena of its own; the worker's decoding and
    # detection threads would each keep one. Two are enough for this workload.
    MALLOC_ARENA_MAX=2

WORKDIR /app
RUN useradd --uid 10001 --create-home emobot \
    && mkdir -p /app/var \
    && chown emobot /app/var
COPY . .

FROM base AS serve
RUN pip install -e '.[serve]'
USER emobot
CMD ["python", "-m", "cli", "--help"]

FROM base AS train
RUN pip install -e '.[train]'
USER emobot
CMD ["python", "-m", "cli", "--help"]
