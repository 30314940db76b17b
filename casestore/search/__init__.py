"""Full-text search over the case store's documents: the port, its adapters, and the indexer.

``port`` holds the contract; ``factory.open_search_index(url, data_dir)`` opens an adapter;
``indexer`` keeps the index in step with the store.
"""
