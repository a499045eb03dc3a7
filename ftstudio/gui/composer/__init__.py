"""The visual layer composer on the Model page: palette, canvas of cards, property editor, and the
`Editor` that turns every gesture into an undoable core command (`ftstudio.core.architecture.composer`)."""
