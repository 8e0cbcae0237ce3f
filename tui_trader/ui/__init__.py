"""The Textual console. Imported only when the console runs: `--no-ui` never loads textual."""
