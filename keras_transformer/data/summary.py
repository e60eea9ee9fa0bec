"""Sizes and split counts of the built-in datasets, for notes and the `__main__` command."""

from keras_transformer.data import cmudict, dates, movie_sentiment, shakespeare


def dataset_table(data_dir=None, cache_dir=None, source_dir=None):
    """Prepare every built-in dataset (once) and count its splits.

    Args:
        data_dir: str or Path. The tfds data folder. Defaults to tfds's.
        cache_dir: str or Path. Where source files are cached. See `sources.fetch`.
        source_dir: str or Path. A folder holding the source files. See `sources.fetch`.

    Returns:
        A list of dicts, one per dataset split, with keys `dataset` (`name/config`), `split`,
        `examples`, `characters` (of the text, or of source plus target), `notes` (label counts
        for sentiment; scene and play counts for Shakespeare; pronunciation counts for
        cmudict, whose examples are words), and per sentiment config a row with
        `split="source"` that says what was dropped.
    """
    paths = {"data_dir": data_dir, "cache_dir": cache_dir, "source_dir": source_dir}
    rows = []
    for split in shakespeare.SPLITS:
        scenes = shakespeare.load_shakespeare(split, **paths)
        rows.append(
            {
                "dataset": "shakespeare",
                "split": split,
                "examples": len(scenes),
                "characters": len(shakespeare.shakespeare_text(split, **paths)),
                "notes": f"{len({s.play for s in scenes})} plays",
            }
        )
    for config in movie_sentiment.DOMAIN_FILES:
        _, stats = movie_sentiment.prepare(config, cache_dir=cache_dir, source_dir=source_dir)
        rows.append(
            {
                "dataset": f"movie_sentiment/{config}",
                "split": "source",
                "examples": stats["rows"],
                "characters": None,
                "notes": (
                    f"dropped {stats['neutral_dropped']} with |rating| < "
                    f"{movie_sentiment.THRESHOLD}, {stats['duplicates_dropped']} duplicates; "
                    f"kept {stats['kept']}"
                ),
            }
        )
        for split in movie_sentiment.SPLITS:
            data = movie_sentiment.load_movie_sentiment(split, config, **paths)
            positive = sum(data.labels)
            rows.append(
                {
                    "dataset": f"movie_sentiment/{config}",
                    "split": split,
                    "examples": len(data),
                    "characters": sum(len(t) for t in data.texts),
                    "notes": f"negative {len(data) - positive}, positive {positive}",
                }
            )
    for split in cmudict.SPLITS:
        data = cmudict.load_cmudict(split, **paths)
        pairs = data.pairs()
        rows.append(
            {
                "dataset": "cmudict",
                "split": split,
                "examples": len(data),
                "characters": sum(len(s) + len(t) for s, t in pairs),
                "notes": (
                    f"{len(pairs):,} pronunciations; "
                    f"{sum(len(p) > 1 for p in data.pronunciations):,} words with several"
                ),
            }
        )
    for split in dates.SPLITS:
        pairs = dates.load_date_pairs(split, data_dir=data_dir)
        rows.append(
            {
                "dataset": "date_to_iso",
                "split": split,
                "examples": len(pairs),
                "characters": sum(len(s) + len(t) for s, t in pairs),
                "notes": f"{len({t for _, t in pairs})} distinct dates",
            }
        )
    return rows


def format_table(rows):
    """Format `dataset_table` rows as a fixed-width text table.

    Args:
        rows: list of dict. As returned by `dataset_table`.

    Returns:
        The table as a `str`, one line per row after a header.
    """
    columns = ("dataset", "split", "examples", "characters", "notes")
    cells = [
        [
            f"{row[c]:,}" if isinstance(row[c], int) else ("" if row[c] is None else str(row[c]))
            for c in columns
        ]
        for row in rows
    ]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = {"examples", "characters"}

    def line(values):
        return "  ".join(
            v.rjust(w) if c in numeric else v.ljust(w)
            for v, w, c in zip(values, widths, columns, strict=True)
        ).rstrip()

    header = line(columns)
    return "\n".join([header, "-" * len(header), *(line(r) for r in cells)])
