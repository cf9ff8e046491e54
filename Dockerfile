FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY api_stub ./api_stub
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
