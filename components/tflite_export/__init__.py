"""TFLiteExport: the blessed model as TFLite files, each checked against the SavedModel."""
