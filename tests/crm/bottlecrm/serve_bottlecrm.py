"""Serve BottleCRM with waitress on 127.0.0.1; run by tests/bottlecrm_peer.py.

Runs inside BottleCRM's own virtual environment. Binds the port itself (0 = any free one)
and writes the port it got to `$BOTTLECRM_HOME/port`, so no other process can take it
between choosing and listening.
"""

import os
import socket

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from waitress import serve

application = get_wsgi_application()

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(os.environ.get("BOTTLECRM_PORT", "0"))))
sock.listen(128)
port = sock.getsockname()[1]
# Its views read settings.Domain (for links in e-mails); Django copies only upper-case
# names from a settings module, so it is set here, once the application exists.
settings.Domain = f"127.0.0.1:{port}"
port_file = os.path.join(os.environ["BOTTLECRM_HOME"], "port")
with open(port_file + ".tmp", "w") as f:
    f.write(str(port))
os.replace(port_file + ".tmp", port_file)
serve(application, sockets=[sock], threads=8, ident="bottlecrm")
