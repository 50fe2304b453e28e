"""The work of the stages whose library parts other stages share: fetch, train_generator, synthesize, fid and
profile_model. Each module is what its `stages/<name>.py` shim calls; the train stages' equivalent is
`train/entry.py` and the report's is `report/`."""
