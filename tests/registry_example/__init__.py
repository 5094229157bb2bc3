"""A backend that lives entirely in the test package: proof that adding one needs no file outside its own
package. `OBSERVER_BACKENDS=tests.registry_example.plugin:ENTRY` registers it; `EXAMPLE_LOGS=on` turns it on."""
