"""BottleCRM settings for the test peer: SQLite, no DEBUG, nothing leaves the machine.

tests/bottlecrm_peer.py copies this file into the server's home and points
DJANGO_SETTINGS_MODULE at it; it runs inside BottleCRM's own virtual environment.
"""

import datetime
import os

from crm.settings import *  # noqa: F403

HOME = os.environ["BOTTLECRM_HOME"]

DEBUG = False
SECRET_KEY = os.environ["BOTTLECRM_SECRET_KEY"]
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["BOTTLECRM_DB"],
    }
}
# Its tasks each build their own Celery app, which takes the broker from the environment
# (CELERY_BROKER_URL=memory://, set by the harness): messages stay in the process.
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = None
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = os.path.join(HOME, "media")
LOGGING["handlers"]["logfile"]["filename"] = os.path.join(HOME, "django.log")  # noqa: F405
# Only tokens made by rest_framework_jwt's own payload handler carry `exp`; BottleCRM's
# login uses its own handler, whose tokens never expire (see docs/bottlecrm.md).
JWT_AUTH = {
    "JWT_EXPIRATION_DELTA": datetime.timedelta(
        seconds=int(os.environ.get("BOTTLECRM_JWT_SECONDS", "300"))
    ),
}
