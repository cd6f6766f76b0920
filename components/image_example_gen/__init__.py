"""An ExampleGen for folders of labelled images."""
