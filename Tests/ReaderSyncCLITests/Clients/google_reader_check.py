"""Drives the PyPI `google-reader` client (0.0.3) against a running ReaderSync server.

    python google_reader_check.py BASE_URL USER APP_PASSWORD

Run by RealReaderClientTests (Tests/ReaderSyncCLITests). The server holds the articles the test
ingested: 3 in section World, 2 in Sports, ids art-1 ... art-5 with URLs
https://news.example/<id>. Asserts what the client sees, makes marks, and prints one JSON line
for the test to compare with what an SDK device pulls: {"read": [...], "starred": [...]} as
article URLs. Exits non-zero on the first failure.
"""
import json
import sys
import time

import google_reader as gr

base_url, user, password = sys.argv[1:4]
client = gr.Client(base_url)

try:
    gr.Client(base_url).login(user, password + "x")
    raise AssertionError("a wrong app password logged in")
except gr.AuthenticationError:
    pass

auth = client.login(user, password)
token = client.get_token(auth)
assert token, "no action token"

info = client.get_user_info(auth)
assert info.user_name == user, info

subscriptions = client.list_subscriptions(auth)
assert [s.title for s in subscriptions] == ["World", "Sports"], subscriptions
assert [[c.label for c in s.categories] for s in subscriptions] == [["World"], ["Sports"]], subscriptions
world = subscriptions[0].id

tags = client.list_tags(auth)
assert gr.STREAM_STARRED in [t.id for t in tags], tags
assert gr.get_label_id("World") in [t.id for t in tags], tags

# Every id, two at a time, following the continuation: no duplicate, none missing.
ids, continuation, pages = [], None, 0
while True:
    page = client.get_stream_items_ids(auth, gr.STREAM_READING_LIST, limit=2, continuation=continuation)
    ids += [ref.id for ref in page.item_refs]
    pages += 1
    continuation = page.continuation
    if not continuation:
        break
assert len(ids) == 5 and len(set(ids)) == 5 and pages == 3, (ids, pages)

contents = client.get_stream_items_contents(auth, token, ids)
by_url = {item.canonical[0].href: item for item in contents.items}
assert sorted(by_url) == ["https://news.example/art-%d" % i for i in range(1, 6)], sorted(by_url)
assert all(item.id.startswith("tag:google.com,2005:reader/item/") for item in contents.items)
short_id = {url: ids[contents.items.index(item)] for url, item in by_url.items()}

# Marks: art-2 read by its short id, art-4 starred by its long id, art-5 read then unread.
assert client.edit_tags(auth, token, [short_id["https://news.example/art-2"]], add_tags=[gr.STREAM_READ])
assert client.edit_tags(auth, token, [by_url["https://news.example/art-4"].id], add_tags=[gr.STREAM_STARRED])
assert client.edit_tags(auth, token, [short_id["https://news.example/art-5"]], add_tags=[gr.STREAM_READ])
assert client.edit_tags(auth, token, [short_id["https://news.example/art-5"]], remove_tags=[gr.STREAM_READ])

starred = client.get_stream_items_ids(auth, gr.STREAM_STARRED)
assert [ref.id for ref in starred.item_refs] == [short_id["https://news.example/art-4"]], starred

# Everything in World that arrived until now becomes read; Sports (art-2 read, art-4 not) stays.
assert client.mark_all_as_read(auth, token, world, before_timestamp=int(time.time() * 1_000_000))
unread = client.get_stream_items_ids(auth, gr.STREAM_READING_LIST, exclude_target=gr.STREAM_READ)
assert [ref.id for ref in unread.item_refs] == [short_id["https://news.example/art-4"]], unread

read = client.get_stream_items_ids(auth, gr.STREAM_READ)
url_of = {v: k for k, v in short_id.items()}
print(json.dumps({"read": sorted(url_of[ref.id] for ref in read.item_refs),
                  "starred": [url_of[ref.id] for ref in starred.item_refs]}))
