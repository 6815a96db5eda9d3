"""The sandbox: a local Exto Data API (one WSGI app, served over HTTP or in-process).

Imported only when used: nothing here is loaded by `exto --help` or by commands that talk to a
real server.
"""
