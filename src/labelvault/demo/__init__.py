"""Demo install: a client with one project per question type and sample tasks written by us."""
