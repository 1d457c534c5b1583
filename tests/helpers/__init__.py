"""What tests share besides fixtures: file writers (`files`), command runners (`cli`), the trained checkpoint
(`checkpoint`) and faults the CLI loads from a config (`faults`)."""
