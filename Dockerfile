# One image for every process; the command picks the service:
#   activity-platform serve activity|referral|reward --host 0.0.0.0 --port 800x
#   activity-platform worker activity|referral|reward
#   activity-platform migrate
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 10001 platform
WORKDIR /app

COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --upgrade pip && pip install -e .

USER platform
EXPOSE 8001 8002 8003
ENTRYPOINT ["activity-platform"]
CMD ["--help"]
