"""PyLate's own reranking, run as a script in an interpreter whose path holds PyLate 1.6 with the versions it pins
(sentence-transformers 5.3, transformers 5.3), apart from this project's (see ``tests/test_colbert.py``).

``python tests/pylate_reference.py REQUEST.json`` reads ``{"checkpoint", "queries", "documents"}`` (``documents[i]``:
query i's passages) and prints ``[[score of each passage, in input order], ...]`` as JSON: ``models.ColBERT(...)
.encode`` of queries and passages, scored by ``rank.rerank``. Standard library and PyLate only.
"""
import json
import sys

from pylate import models, rank

request = json.loads(open(sys.argv[1]).read())
model = models.ColBERT(model_name_or_path=request["checkpoint"], device="cpu")
queries = model.encode(request["queries"], is_query=True)
documents = model.encode(request["documents"], is_query=False)
ids = [[str(j) for j in range(len(docs))] for docs in request["documents"]]
reranked = rank.rerank(documents_ids=ids, queries_embeddings=queries, documents_embeddings=documents)
print(json.dumps([[next(r["score"] for r in result if r["id"] == str(j)) for j in range(len(docs))]
                  for result, docs in zip(reranked, request["documents"])]))
