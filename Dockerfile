# The Safelight Python image: one image for every process of the stack
# (`safelight api`, `worker`, `migrate`, `fake-comfy`), chosen by the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# .dockerignore keeps the context to the Python sources (no tests, frontend, venv or local state).
COPY . .
RUN pip install . \
    && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin safelight \
    && mkdir -p /data/images \
    && chown -R safelight:safelight /data
USER safelight
WORKDIR /data
ENV SAFELIGHT_STATE_DIR=/data
VOLUME ["/data"]
EXPOSE 8000

ENTRYPOINT ["safelight"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
