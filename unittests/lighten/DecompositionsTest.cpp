// Tests are added with the implementation.
