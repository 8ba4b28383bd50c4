import os

# The CLI keeps compiled programs in ~/.cache/ppox by default; tests measure cold behaviour and leave no files.
os.environ["PPOX_CACHE_DIR"] = ""
