"""Query one book over ZeroMQ REQ/REP: python zmq_client.py tcp://127.0.0.1:5555 ISBN"""
import json
import sys

import zmq

sock = zmq.Context().socket(zmq.REQ)
sock.connect(sys.argv[1])
sock.send_json({"action": "query_isbn", "isbn": sys.argv[2]})
print(json.dumps(sock.recv_json()))
