# Backstory's server (and worker: the same image, another command). Not built by the test suite.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY tools ./tools
COPY server ./server
RUN uv sync --frozen --no-dev && useradd --create-home backstory
# Its home holds the prepared models' cache (written on the first start).
USER backstory
EXPOSE 8000
CMD ["backstory", "serve", "--host", "0.0.0.0", "--port", "8000"]
