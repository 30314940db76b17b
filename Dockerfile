# casework image: the API, the connectors and every pipeline stage (choose with the command).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng util-linux fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY connectors connectors
COPY ingest ingest
COPY classify classify
COPY casestore casestore
COPY api api
RUN pip install --no-cache-dir .
ENV CASEWORK_DATA_DIR=/data OMP_THREAD_LIMIT=1
VOLUME /data
EXPOSE 8000
CMD ["casework", "serve", "--host", "0.0.0.0"]
