"""The main window's pages: Data, Model, Train, Runs, Export."""
