"""Query one book over HTTP/JSON: python http_client.py http://127.0.0.1:5555 ISBN"""
import json
import sys
import urllib.request

body = json.dumps({"isbn": sys.argv[2]}).encode()
try:
    reply = urllib.request.urlopen(f"{sys.argv[1]}/query_isbn", body).read()
except urllib.error.HTTPError as refused:  # 404, 409, 400: the body is the reply all the same
    reply = refused.read()
print(json.dumps(json.loads(reply)))
