"""Query one book over gRPC: python grpc_client.py 127.0.0.1:5555 ISBN (with the stubs that
`python -m grpc_tools.protoc` makes from library.proto)."""
import json
import sys

import grpc
from google.protobuf.json_format import MessageToDict

from libsrv.transports import library_pb2, library_pb2_grpc

stub = library_pb2_grpc.LibraryStub(grpc.insecure_channel(sys.argv[1]))
reply = stub.QueryIsbn(library_pb2.IsbnRequest(isbn=sys.argv[2]))
print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True)))
