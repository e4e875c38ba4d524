# One image for every process of the platform: `python -m emobot bot|worker|trainer|migrate|…`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/app/var

WORKDIR /app
COPY . .
RUN pip install -e . \
    && useradd --uid 10001 --create-home emobot \
    && mkdir -p /app/var \
    && chown emobot /app/var

USER emobot
CMD ["python", "-m", "emobot", "--help"]
