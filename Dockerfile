# The docqa image of compose.yaml (untested by Docker on the project's machine): the package
# with its build extras (the index is built by the same image), CPU torch first.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# Point pip at PyTorch's CPU wheel index for this line where the default torch would be CUDA.
RUN pip install --no-cache-dir "torch==2.13.0" && pip install --no-cache-dir ".[build]"
ENV HF_HUB_OFFLINE=1
EXPOSE 8000
CMD ["docqa", "serve", "--host", "0.0.0.0", "--port", "8000"]
