# Bastion: a multi-stage image that runs as an unprivileged user.
#   docker build -t bastion:0.1.0 .
#   docker run --env-file bastion.env -p 8000:8000 bastion:0.1.0
# See docs/deploy.md for the settings a production instance needs.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
RUN python -m venv /opt/bastion
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/bastion/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/bastion/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BASTION_ENV=production \
    BASTION_LOG_JSON=true
RUN groupadd --system --gid 10001 bastion \
    && useradd --system --uid 10001 --gid bastion --no-create-home --shell /usr/sbin/nologin bastion
COPY --from=build /opt/bastion /opt/bastion
# An empty working directory: no stray .env file is read from it.
WORKDIR /srv/bastion
USER 10001:10001
EXPOSE 8000
# `bastion serve` lets its workers pool metrics in a directory under /tmp (must be writable).
ENTRYPOINT ["bastion"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
