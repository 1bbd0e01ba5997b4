"""`winnow ingest | delete`: upsert a JSON-lines corpus (with its own vectors, optionally), delete by id."""

from __future__ import annotations

import sys

from winnow.cli.common import connect, emit
from winnow.cli.failures import CliError, Exit


def cmd_ingest(args) -> int:
    from winnow.ingest import CorpusError, count_lines, ingest, read_documents
    from winnow.vectorfile import VectorFileError, read_vectors

    try:
        total = count_lines(args.file)
    except OSError as exc:
        raise CorpusError(f"{args.file}: cannot open ({exc.strerror or exc})") from None
    docs = read_documents(args.file)
    if args.vector_file:  # one row per document, in file order
        try:
            vectors = read_vectors(args.vector_file)
        except VectorFileError as exc:
            raise CliError(str(exc), Exit.INVALID_ARGUMENT) from None
        if vectors.shape[0] != total:
            raise CorpusError(f"{args.vector_file}: {vectors.shape[0]} vectors for {total} documents")
        docs = ({**d, "vector": v} for d, v in zip(docs, vectors))
    client, found = connect(args)
    with client:
        n = ingest(client, docs, batch_size=args.batch_size, total=total, progress=not (args.quiet or args.json),
                   vector_model=args.vector_model)
    print(f"upserted {n} documents into {found.target}", file=sys.stderr)
    if args.json:
        emit(args, {"upserted": n, "gateway": found.target})
    return 0


def cmd_delete(args) -> int:
    client, _ = connect(args)
    with client:
        n = client.delete(args.ids).deleted
    print(f"deleted {n}", file=sys.stderr)
    if args.json:
        emit(args, {"deleted": n})
    return 0


# -- parsers: `add(name, help)` is `winnow.cli.app.build_parser`'s, which keeps the help's order ------------------

def add_ingest(add) -> None:
    ing = add("ingest", "upsert a JSON-lines corpus (BEIR layout accepted, .gz too)")
    ing.add_argument("file", help="corpus: {_id,title,text} (BEIR) or {id,text,metadata} per line")
    ing.add_argument("--batch-size", type=int, default=64, help="documents per upsert request")
    ing.add_argument("--quiet", action="store_true", help="no progress bar")
    ing.add_argument("--vector-file", default=None,
                     help="your own document vectors (.npy or JSON matrix), one row per document in file order")
    ing.add_argument("--vector-model", default="", help="the model that made the vectors ('' = the collection's)")
    ing.set_defaults(func=cmd_ingest)


def add_delete(add) -> None:
    de = add("delete", "delete documents by id")
    de.add_argument("ids", nargs="+", help="document ids")
    de.set_defaults(func=cmd_delete)
