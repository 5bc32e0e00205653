"""The input pipeline over WebDataset shards (reads only what shards/FORMAT.md says), in three parts:

- :mod:`~interceptor.data.shard_sets`: which shards a config names (shard sets found through their manifests);
- :mod:`~interceptor.data.decoding`: a raw shard sample -> the model's inputs (decoding, training augmentation);
- :mod:`~interceptor.data.streams`: the deterministic training stream, the evaluation stream, the loader.

How a clip becomes a model's inputs is :mod:`interceptor.inputs`, which prediction uses too.
"""
