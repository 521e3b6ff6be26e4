SELECT trim('  a  ') || '|', ltrim('  a  ') || '|', rtrim('  a  ') || '|', trim('xxaxx', 'x'), ltrim('aab', 'a'), rtrim('baa', 'a');
