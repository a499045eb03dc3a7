"""Using a trained model: predictions on new images (`predict`), explanations (`explain`), the
validation mistakes (`mistakes`) and the Try page's session that ties them together (`trying`)."""
