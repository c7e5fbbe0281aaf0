import json, sys
for line in sys.stdin:
    job = json.loads(line)
    words = job["payload"]["text"].split()
    reply = {"result": {"words": len(words)}} if words else {"error": "empty text"}
    print(json.dumps(reply), flush=True)
