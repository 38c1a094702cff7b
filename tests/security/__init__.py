"""Security tests of ``loopml server`` (a package: its module names do not clash with the
unit tests', e.g. ``test_models_trust``)."""
