"""Data layer: the data contract, validated loading, KT file formats and KT sequences."""
