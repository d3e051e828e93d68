FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
RUN pip install --no-cache-dir . && useradd --system --uid 10001 app
COPY rules ./rules
USER app
ENV RULES_PATH=/app/rules
EXPOSE 8000
CMD ["ticket-worker", "serve", "--host", "0.0.0.0", "--port", "8000"]
