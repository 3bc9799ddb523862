#!/bin/sh
# Every 30 s, ask GitHub who we are. curl reads HTTP_PROXY; the proxy puts
# the real token in place of the reference, only for api.github.com.
while true; do
  curl -sS -H 'Authorization: Bearer $Secret{GITHUB_TOKEN}' \
       -H 'User-Agent: secretproxy-example' http://api.github.com/user | head -c 300
  echo
  sleep 30
done
