"""The emulator's files world: generated content (docx/xlsx/pdf/csv/txt/png), the storage model
(spaces, dentries, versions), knowledge bases and online documents, groups and robot messages.

Everything is a pure function of the seed and ids, generated lazily: nothing proportional to the
number of files is built at start-up, and file bytes exist only while they are being served.
"""
