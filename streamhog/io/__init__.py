"""The data layer: files in, blocks of rows out.

``formats/`` reads and writes the on-disk formats (Parquet, Zarr; LIBSVM text and click
logs in), ``dataset.py`` is what a dataset is to the rest of streamhog, ``stream.py`` the
reader threads and the bounded buffer, ``threads.py`` the consumer and producer thread
patterns, ``block_cache.py`` decoded blocks memory-mapped for later epochs,
``conversion.py`` the converter, ``hashing.py`` feature hashing, ``batch.py`` the
``SparseBatch`` that flows from readers to consumers. Nothing here knows about models.
"""
