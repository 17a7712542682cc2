# The app image: Python dependencies, the npm browser libraries, collected static files.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt package.json package-lock.json ./
RUN python -m venv .venv && .venv/bin/pip install --no-cache-dir -r requirements.txt \
    && npm ci --no-audit --no-fund
COPY . .
RUN bash scripts/copy-vendor.sh \
    && SECRET_KEY=build STATICFILES_STORAGE=config.storage.StaticStorage \
       .venv/bin/python manage.py collectstatic --noinput
ENV STATICFILES_STORAGE=config.storage.StaticStorage
EXPOSE 8000
CMD [".venv/bin/daphne", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]
