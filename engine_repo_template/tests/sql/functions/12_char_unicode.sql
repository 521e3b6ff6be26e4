SELECT char(72, 105), unicode('A'), unicode('é'), char(), unicode('');
