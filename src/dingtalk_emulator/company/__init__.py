"""The generated Macau company: people (eagerly, they are few) and records (lazily, from the seed)."""
